"""The frontier's Triton kernels, each beside its naive reference: the fused trunk (block 0), the fused LM head and
cross-entropy / argmax, the fused AdamW update, and the Taylor attention (fla's kernels and our own autograd form)."""
