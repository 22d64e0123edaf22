"""A faster local file system for the local stack's Spark (see NioLocalFileSystem.java), built on demand."""
