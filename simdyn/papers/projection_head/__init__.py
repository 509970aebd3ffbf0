"""Xue, Gan, Ni, Joshi, Mirzasoleiman, "Investigating the Benefits of Projection Head for
Representation Learning", ICLR 2024: what a projection head does.

So far:

* :mod:`~simdyn.papers.projection_head.closed_forms`: Thm 3.3, 3.5, 3.6, App. B, Cor. 3.7;
* :mod:`~simdyn.papers.projection_head.data`: the data model (Def. 3.1, 3.2, 4.1, downstream);
* :mod:`~simdyn.papers.projection_head.linear`: deep linear encoders with a head trained on the
  population loss through the core loop and seed engine.
"""
