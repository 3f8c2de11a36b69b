"""hefsweep: sweep harness for porting Conv-TasNet-style audio models to Hailo HEFs."""

__version__ = "0.1.0"
