"""Lambda handlers that ship with the simulator and deploy as they are (``template.yaml``).

They import only the library (``siblings``) and botocore, never the simulator itself.
"""
