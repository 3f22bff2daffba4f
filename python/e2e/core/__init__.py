"""Pure PyTorch/NumPy core of gr-e2e: never imports gnuradio or pmt."""
