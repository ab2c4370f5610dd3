"""Transformations between in-memory models: BatchNorm folding (its shared arithmetic,
Darknet's and Caffe's) and Caffe to Darknet, each checked against an independent runtime."""
