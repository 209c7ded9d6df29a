"""The frontier's Triton kernels, each beside its naive reference: the fused trunk (block 0), the fused LM head and
cross-entropy / argmax, the fused AdamW update, the Taylor attention (fla's kernels and our own autograd form),
Mamba's selective scan, the delta rules' short convolution with its norms (``short_conv``) and their output norm
(``head_norm``); and the calls into fla's kernels (``fla_*``) with our forms of what fla refuses."""
