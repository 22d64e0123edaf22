"""The local stack's JVM tuning for Spark drivers: a class-data-sharing archive (class_data_sharing)."""
