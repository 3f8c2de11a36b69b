"""The fake's implementation (not part of the real SDK's surface). See ``../README.md``."""
