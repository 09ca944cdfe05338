"""Fine-tune the course model with LoRA: lesson 04's lab, in four modules that follow its sections.

* :mod:`ftcourse.lora.data`, data to tensors (section 2, "Tokens are the lever"): ``encode_example(s)``
  with labels on the answer only, ``token_stats``, ``collate`` (pad to the longest example),
  ``batch_stream``, ``tokens_per_epoch``;
* :mod:`ftcourse.lora.train`, the training loop (sections 3, 4 and 6): ``answer_loss``, ``dataset_loss``,
  ``train_lora`` with its live plot and early stopping, ``TrainResult``, ``default_batch_size``;
* :mod:`ftcourse.lora.adapters`, the adapter (sections 4 and 9): ``add_lora``, ``trainable_parameters``,
  ``save_adapter`` / ``load_adapter`` / ``merge_adapter``, and the sizes ``folder_bytes`` /
  ``model_bytes``;
* :mod:`ftcourse.lora.lab`, the lab's measurements (sections 4-8 and part B): the validation metrics
  (``ticket_metric``, ``leak_metric``, ``fact_metric``), the temperature sweep (section 5), the plots,
  ``flops_per_token`` (section 7), the regression probe and the data mix (section 8), and the
  facts-in-weights helpers (``facts_training_for``, ``stale_answers``, ``plot_fact_accuracy``).

``LoraSettings`` (every setting of a run) sits in :mod:`ftcourse.lora.settings`, which the adapter and
the loop both read. Imports run one way only: ``settings <- adapters <- train`` and
``data <- train <- lab``. Every public name is importable from here: a lesson writes
``from ftcourse import lora`` and then ``lora.train_lora(...)``.
"""

from .adapters import (
    add_lora,
    copy_adapter_weights,
    folder_bytes,
    load_adapter,
    merge_adapter,
    model_bytes,
    save_adapter,
    trainable_parameters,
)
from .data import (
    IGNORE,
    batch_stream,
    collate,
    encode_example,
    encode_examples,
    messages_of,
    token_stats,
    tokens_per_epoch,
)
from .lab import (
    LeakReport,
    by_temperature,
    compliance_by_temperature,
    compliance_checker_cases,
    compliance_metric,
    fact_metric,
    facts_training_for,
    flops_per_token,
    leak_metric,
    mix_examples,
    plot_fact_accuracy,
    plot_label_climb,
    plot_locking_in,
    plot_temperature_sweep,
    stale_answers,
    sweep_table,
    ticket_format_leak,
    ticket_metric,
)
from .settings import LoraSettings
from .train import (
    LiveLossPlot,
    TrainResult,
    answer_loss,
    dataset_loss,
    default_batch_size,
    draw_training,
    in_notebook,
    plot_training,
    train_lora,
)

__all__ = [
    # data
    "IGNORE", "messages_of", "encode_example", "encode_examples", "token_stats", "collate", "batch_stream",
    "tokens_per_epoch",
    # settings and training
    "LoraSettings", "default_batch_size", "answer_loss", "dataset_loss", "in_notebook", "LiveLossPlot",
    "draw_training", "TrainResult", "train_lora", "plot_training",
    # adapters
    "add_lora", "copy_adapter_weights", "trainable_parameters", "folder_bytes", "model_bytes", "save_adapter",
    "load_adapter", "merge_adapter",
    # the lab's measurements
    "ticket_metric", "compliance_metric", "leak_metric", "fact_metric", "flops_per_token",
    "compliance_checker_cases", "mix_examples", "compliance_by_temperature", "by_temperature",
    "plot_temperature_sweep", "sweep_table", "LeakReport", "ticket_format_leak", "plot_locking_in",
    "plot_label_climb", "facts_training_for", "stale_answers", "plot_fact_accuracy",
]
