"""Data layer: the VOCASET format (vocaset.py), mesh I/O (mesh.py), the synthetic corpus, audio
features, preprocessing and the torch dataset."""
