"""Small Keras heads trained on frozen backbone embeddings."""
from __future__ import annotations

import dataclasses

import tf_keras as keras


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """A head: ``hidden_units`` Dense-ReLU layers, then a Dense layer over the classes.

    The default is the YAMNet transfer-learning tutorial's head (Dense 512 ReLU → classes).
    ``hidden_units=()`` is a linear probe.

    Args:
        hidden_units: sizes of the hidden layers.
        dropout: dropout rate before each Dense layer (0: none).
        l2: L2 weight penalty on every kernel (0: none).
        multi_label: sigmoid outputs and binary cross-entropy (several labels per clip) instead of
            softmax and categorical cross-entropy.
    """

    hidden_units: tuple[int, ...] = (512,)
    dropout: float = 0.0
    l2: float = 0.0
    multi_label: bool = False

    @classmethod
    def linear(cls, **kwargs) -> HeadConfig:
        return cls(hidden_units=(), **kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        d = dict(d)
        d["hidden_units"] = tuple(d.get("hidden_units", ()))
        return cls(**d)


def build_head(embedding_dim: int, num_classes: int, config: HeadConfig = HeadConfig(), name: str = "head") -> keras.Model:
    """A Keras model: embeddings [batch, embedding_dim] → class scores [batch, num_classes]
    (softmax probabilities, or sigmoid ones when ``config.multi_label``).

    Example:
        >>> head = build_head(1024, 2)              # the tutorial's MLP
        >>> probe = build_head(1024, 2, HeadConfig.linear())
    """
    if num_classes < 2 and not config.multi_label:
        raise ValueError(f"a single-label head needs at least 2 classes, got {num_classes}")
    reg = keras.regularizers.l2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=(embedding_dim,), dtype="float32", name="embedding")
    x = inputs
    for i, units in enumerate(config.hidden_units):
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"hidden_{i}")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="dropout_out")(x)
    activation = "sigmoid" if config.multi_label else "softmax"
    outputs = keras.layers.Dense(num_classes, activation=activation, kernel_regularizer=reg, name="scores")(x)
    return keras.Model(inputs, outputs, name=name)
