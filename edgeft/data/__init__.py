"""What edgeft trains and calibrates on: labelled texts (text), tagged sentences for NER (tagged), the model and data
sets that ship inside PyPI packages (assets), and calibration recipes for static quantization (calibration)."""
