"""Export: ONNX with pruned shapes and INT4 weights, TensorRT engines, and deploy bundles for boards."""
