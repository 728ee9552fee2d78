"""Tools for testing gsc itself (the stream fuzzer): clients of the codec, like eval and train."""
