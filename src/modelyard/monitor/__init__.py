"""The resource monitor: CPU, memory and GPUs, sampled in the background."""
