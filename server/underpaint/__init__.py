"""underpaint: one local daemon for AI inpainting, outpainting and img2img inside Krita, GIMP 3 and Figma."""

__version__ = "0.1.0"
