"""Where images live, and moving them between places.

Every place implements :mod:`pallet.transport.base` (``ImageSource`` /
``ImageDestination``); :func:`pallet.transport.copy.copy` moves an image between any two:

* ``store``          the local store (``pallet:REF``)
* ``layout``         OCI image layout directories (``oci:DIR[:REF]``)
* ``oci_archive``    OCI archives (``oci-archive:FILE[:REF]``)
* ``docker_archive`` ``docker save`` archives (``docker-archive:FILE[:REF]``)
* ``registry``       registries (``docker://REF``)
* ``names``          parsing those names and opening the place they name
"""
