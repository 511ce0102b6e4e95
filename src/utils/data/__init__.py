"""The ground floor: the GLDv2 data contract, manifests, image reading, augmentation, datasets.

Nothing here imports a higher floor (models, training, retrieval, ...).
"""
