"""Fine-tuning and training, shared by every backend: data, run folders, metrics, the epoch loop.

- :mod:`.protocol`: what a backend provides to train (``seed``, ``trainer`` -> a Trainer);
- :mod:`.folders`, :mod:`.batches`: class folders and the one data pipeline (augmentation,
  preprocessing, shards of a distributed run);
- :mod:`.settings`: what a run is asked for, the defaults, and what a resumed run keeps;
- :mod:`.finetune`: the head for the data's classes, weights, freezing, then :mod:`.loop`;
- :mod:`.run_folder`, :mod:`.plot`, :mod:`.metrics`: what a run writes (run.json: a versioned
  :class:`~.run_folder.RunRecord`) and how it is scored;
- :mod:`.evaluate`: a run's best checkpoint on a split (``vggspec evaluate``).
"""
