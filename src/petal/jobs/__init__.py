"""Jobs that use a model or the data end to end: evaluation, the label review, `petal run`."""
