"""blur2vid: one blurry image -> the 7 sharp frames of its exposure (HyperCUT paper, Sec. 3.2, Table 2).

Modules: ``network`` (the residual U-Net), ``losses`` (naive, order-invariant, hypercut + R_hyp),
``metrics`` (pPSNR as the official evaluation computes it), ``data``, ``checkpoint``, ``train``,
``evaluate``, ``deblur`` (any photo, tiled; ``inputs``: its checks, without torch), ``cli`` (the three commands).
"""
