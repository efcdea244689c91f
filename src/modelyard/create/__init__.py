"""Custom model creation: a design (from a preset), its checks and preview, a tokenizer
(pretrained or trained), and the export job that writes and imports the model."""
