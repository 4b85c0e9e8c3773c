"""edgekit edge side: everything that runs on the device.

Light by design: numpy, paho-mqtt, cryptography and one inference runtime.
Never imports ``cloud``, TensorFlow or Flask.
"""

__version__ = "0.1.0"
