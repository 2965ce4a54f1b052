"""The bounds every loader checks before it allocates or decompresses anything.

A model file is small compared with what it can *declare*: a 150 KiB file can name a layer of
50,000 units, and a zip member of 400 KiB can inflate to gigabytes. npnet therefore reads
sizes first (zip directory entries, HDF5 dataset shapes, safetensors headers), compares them
with what the declared architecture needs and with the bounds below, and only then reads the
bytes. Change a bound by assigning to it (``npnet.saving.limits.MAX_PARAMETERS = ...``).
"""

#: Model descriptions (``config.json``, ``model.json``, ``metadata.json``, HDF5 attributes).
MAX_JSON_BYTES = 16 * 2**20
#: Parameters a loaded model may have, all layers together (float32: 4 GiB).
MAX_PARAMETERS = 2**30
#: Bytes an HDF5 or safetensors member may add beyond the arrays it must hold (headers,
#: group entries); a member larger than its arrays plus this is refused before it is read.
CONTAINER_OVERHEAD_BYTES = 4 * 2**20
#: Members a model zip may list (Keras writes 3, npnet's own format 2 or 3).
MAX_ZIP_MEMBERS = 64
#: Elements one sample may have where loading must run a layer of the caller's own class
#: on one sample of zeros to learn its output shape (it defines no compute_output_shape).
MAX_SAMPLE_ELEMENTS = 2**24
#: Layers a model description may list.
MAX_LAYERS = 10_000
#: Thresholds a metric in a file may ask for (AUC's ``num_thresholds``, a list of
#: ``thresholds``): each costs four counters per output (Keras's default is 200).
MAX_METRIC_THRESHOLDS = 100_000
