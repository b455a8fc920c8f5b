"""The small shared module of the EBM-on-MNIST pipeline.

One file per concept: `model` (the energy network), `sampler` (Langevin dynamics),
`buffer` (the replay buffer), `objective` (the contrastive-divergence loss),
`runtime` (device and seeding), `params` (reading and validating params.yaml),
`data` (the digits file), `io` (atomic writes), `images` (sample grids).
"""
