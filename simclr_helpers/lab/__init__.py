"""The lab wing: what measures and publishes the course, not what teaches it.

``benchmark`` (the blog's pipeline against the fast path), ``ablations`` (what each piece of the recipe is
worth), ``label_efficiency`` (four curves over label fractions), ``gpucheck`` (what to run first on a GPU),
``reproduce`` (one row of the results table, measured) and ``results`` (the results file, the README's tables,
and the stamp every record carries). These modules import the learner's package; the learner's package never
imports them, so a newcomer reading ``simclr_helpers`` reads SimCLR.
"""
