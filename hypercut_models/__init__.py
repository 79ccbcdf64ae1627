"""HyperCUT ordering model (CVPR 2023): network, hyperplane, losses, data, trainer, evaluator."""
