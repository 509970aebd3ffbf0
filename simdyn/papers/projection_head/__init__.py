"""Xue, Gan, Ni, Joshi, Mirzasoleiman, "Investigating the Benefits of Projection Head for
Representation Learning", ICLR 2024: what a projection head does.

So far: the closed forms (:mod:`~simdyn.papers.projection_head.closed_forms`) and the data
model (:mod:`~simdyn.papers.projection_head.data`), and deep linear encoders with a head trained on
the population loss through the core loop and seed engine (:mod:`~simdyn.papers.projection_head.linear`).
"""
