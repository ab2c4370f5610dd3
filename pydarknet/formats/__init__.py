"""File formats: Darknet cfg (line-preserving) and weights, Caffe prototxt and caffemodel
(through protobuf), and the Caffe graph the transforms read. Pure Python: no extension."""
