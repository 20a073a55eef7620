"""The one place that joins the models (dit/) and the files (data/) for inference: remap, play, outputs, and the
training tasks. The command line, the notebook, testing/ and the tests all call it."""
