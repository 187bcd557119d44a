"""The numerics several jobs and pages share, without I/O: metrics of predictions against
labels (metrics), confident learning and the review's ranking (confident), the labelling
queue's order (queue)."""
