package covid19lake.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system for the local stack's Spark, with two differences that matter for a lake of
 * many small partition files.
 *
 * <p>Without Hadoop's native library (pip's pyspark has none), RawLocalFileSystem sets every permission by
 * forking a {@code chmod} process: three forks per partition file written (its directory, the file and its
 * .crc), each about 6 ms. Here permissions are set through java.nio instead, with the same modes. And no
 * .crc side files are written: object stores have none either, and the lake's readers ignore them.
 */
public class NioLocalFileSystem extends LocalFileSystem {

  public NioLocalFileSystem() {
    super(new NioRawLocalFileSystem());
    setWriteChecksum(false);
  }

  /** RawLocalFileSystem with permissions set in-process. */
  public static class NioRawLocalFileSystem extends RawLocalFileSystem {
    // Bit i of a POSIX mode, from the lowest (others execute) to the highest (owner read).
    private static final PosixFilePermission[] MODE_BITS = {
      PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
      PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
      PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
    };

    @Override
    public void setPermission(Path path, FsPermission permission) throws IOException {
      short mode = permission.toShort();
      Set<PosixFilePermission> permissions = EnumSet.noneOf(PosixFilePermission.class);
      for (int bit = 0; bit < MODE_BITS.length; bit++) {
        if ((mode & (1 << bit)) != 0) {
          permissions.add(MODE_BITS[bit]);
        }
      }
      Files.setPosixFilePermissions(pathToFile(path).toPath(), permissions);
    }
  }
}
