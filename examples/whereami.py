"""An ordinary script that knows nothing about pyns_boot.

Run it with gons_* variables in an environment where pyns_boot is
installed and it reports the namespaces it was started in.
"""

import os
import socket

print("hostname   :", socket.gethostname())
print("interfaces :", ", ".join(name for _, name in socket.if_nameindex()))
for ns_type in ("net", "uts", "mnt"):
    print(f"{ns_type!s:<11}:", os.readlink("/proc/self/ns/" + ns_type))
