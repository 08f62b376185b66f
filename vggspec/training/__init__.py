"""Fine-tuning and training, shared by every backend: data, run folders, metrics, the epoch loop.

- :mod:`.protocol`: what a backend provides to train (``seed``, ``trainer`` -> a Trainer) and the
  settings every backend shares (:class:`~.protocol.TrainConfig`); :mod:`.backend_settings`: a
  backend's own settings (torch's device, ...), declared by it and checked here;
- :mod:`.folders`, :mod:`.batches`: class folders and the one data pipeline (augmentation,
  preprocessing, shards of a distributed run); :mod:`.seeds`: the seeds of every random draw;
- :mod:`.settings`: what a run is asked for, the defaults, and what a resumed run keeps;
- :mod:`.finetune`: the run, from :mod:`.head` (the head for the data's classes, freezing, weights)
  to :mod:`.loop` (the epochs);
- :mod:`.run_folder`, :mod:`.record_json`, :mod:`.plot`, :mod:`.metrics`: what a run writes (run.json:
  a versioned :class:`~.run_folder.RunRecord`) and how it is scored (the running means every trainer
  feeds included);
- :mod:`.evaluate`: a run's best checkpoint on a split (``vggspec evaluate``).
"""
