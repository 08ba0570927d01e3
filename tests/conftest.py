"""Shared test settings."""
import torch

# The tensors here are tiny: intra-op threads only contend (on a loaded 2-core CI machine,
# 2 threads made the 300-step runs 10-20x slower than 1 thread). Results do not depend on it.
torch.set_num_threads(1)
