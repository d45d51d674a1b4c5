"""The seven FER-2013 classes, in FER-2013 label order.

This is the one place in the project that spells the order. The daemon never relies on
it for inference (it reads the label order from the model's metadata); it is used by the
trainer to name classes and by the config schema to validate alert rules.
"""

FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: What the state topic, Home Assistant and the live view name instead of an emotion when
#: the model is not sure (below ``events.min_confidence``, where no event would fire
#: either): a label such as "angry 25%" reads as a claim the daemon does not make.
UNCERTAIN: str = "uncertain"
