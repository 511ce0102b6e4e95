"""Kaggle kernels of the numbered notebooks (a face: ``python -m utils kernels``).

- `table`: what each notebook gets on Kaggle (GPU, the kernel outputs it reads, parameters),
  the slugs and the owner;
- `build`: ``kernels/NN_name/`` (the notebook prepared by papermill, ``kernel-metadata.json``);
- `dataset`: the package and the wheels the Kaggle image lacks, as a Kaggle dataset folder;
- `cli`: the ``build``, ``dataset``, ``push``, ``status`` and ``output`` subcommands.
"""
