"""An existing ONNX as the model (``model: {onnx: PATH}``)."""
