"""Everything a trained model needs to answer: its folder, preprocessing, the Classifier with
its torch and ONNX Runtime engines, the novelty score, explanations and export. Imports no
training code."""
