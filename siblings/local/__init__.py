"""Local stand-ins for AWS: an embedded moto server and the tools built around it.

Needs the ``local`` extra (``pip install 'lambda-siblings[local]'``).
"""
