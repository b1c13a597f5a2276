"""The network lab: the store's services on hosts of their own (Linux network namespaces on a
bridge) with links to cut and heal. ``hosts`` builds and removes the hosts, ``links`` describes
partitions and applies them with nftables, ``lab`` runs the store on the hosts, ``cli`` is
``toystore netlab``. See docs/netlab.md.
"""
