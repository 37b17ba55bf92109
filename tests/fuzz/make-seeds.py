#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the hand-made seed inputs of the fuzz targets into corpus/NAME/ (run once;
the files are in the tree).  Crash inputs found later are added beside them."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


for i, s in enumerate(['4k', '1m:4k', '0:1s', '18446744073709551615', '1t:1t', '16g', '3K:7M']):
    put('size_range', 'seed-%d' % i, s)
put('ranges_file', 'seed-0', '0:4k\n1m:4k\n# a comment\n\n96k:64k\n')
put('ranges_file', 'seed-1', '1s:1s\r\n2s:2s\n   \n')
put('iscsi_url', 'seed-0', 'iscsi://user%secret@san1:3260/iqn.2003-01.org.linux-iscsi.san1:vol/0\0\0')
put('iscsi_url', 'seed-1', 'iscsi://[fe80::1]/iqn.2003-01.org.x%3Ay/16383\0backup\0pw')
put('iscsi_url', 'seed-2', 'Failed to log in to target. Status: Authentication failure(513)')

# NVMe: 512-byte blocks, status 0x281, Identify Controller with ONCS Copy and OCFS 0,
# Identify Namespace with LBA format 0 (2^9, no metadata), MSSRL 128, MCL 128, MSRC 127.
ctrl = bytearray(4096)
struct.pack_into('<H', ctrl, 520, 1 << 8)
struct.pack_into('<H', ctrl, 534, 1)
ns = bytearray(4096)
struct.pack_into('<HIB', ns, 74, 128, 128, 127)
ns[128 + 2] = 9
put('nvme', 'seed-0', struct.pack('<II', 0, 0x281) + bytes(ctrl) + bytes(ns))
ns[26] = 1              # LBA format 1: 4 KiB
ns[132 + 2] = 12
put('nvme', 'seed-1', struct.pack('<II', 3, 0x4002) + bytes(ctrl) + bytes(ns))


def good(data=b''):
    return bytes([0]) + struct.pack('<H', len(data)) + data


def check(sense):
    return bytes([1]) + struct.pack('<H', len(sense)) + sense


inquiry = bytearray(96)
inquiry[5] = 0x08       # 3PC
capacity = struct.pack('>QI', 131071, 512) + bytes(20)
vpd00 = bytes([0, 0, 0, 3, 0x00, 0x83, 0x8f])
naa = bytes([0x01, 0x03, 0x00, 16]) + bytes([0x60, 0x01, 0x40, 0x50]) + bytes(12)
vpd83 = bytes([0, 0x83]) + struct.pack('>H', len(naa)) + naa
rcop = bytearray(256)
struct.pack_into('>HHII', rcop, 8, 2, 1, 1024, 256 << 20)
rcop[43] = 2
rcop[44], rcop[45] = 0x02, 0xe4
discover = good(bytes(inquiry)) + good(capacity) + good(vpd00) + good(vpd83) + good(bytes(rcop))
wp = good(bytes(8))
b0 = good(bytes([0, 0xb0, 0, 0x3c]) + bytes(4) + struct.pack('>I', 2048) + bytes(52))
put('scsi', 'seed-0', good() + good(bytes(inquiry)) + wp + b0 + discover + discover + good())
# The copy manager refuses the EXTENDED COPY: ILLEGAL REQUEST, too many segment descriptors.
fixed = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x26, 0x08]) + bytes(4)
put('scsi', 'seed-1', good() + good(bytes(inquiry)) + wp + b0 + discover + discover + check(fixed))
put('sense', 'seed-0', struct.pack('<H', len(fixed)) + fixed)
desc = bytes([0x72, 0x0a, 0x0d, 0x02, 0, 0, 0, 24]) + bytes([0x00, 0x0a, 0x80, 0]) + \
    struct.pack('>Q', 4096) + bytes([0x01, 0x0a, 0, 0]) + struct.pack('>Q', 3)
put('sense', 'seed-1', struct.pack('<H', len(desc)) + desc)
put('sense', 'seed-2', struct.pack('<H', 252) + fixed)     # claims more than it holds


def dm_status(targets):
    """A DM_TABLE_STATUS answer: dm_ioctl (312 bytes), then specs with their text."""
    data = b''
    for i, (start, length, ttype, params) in enumerate(targets):
        p = params.encode() + b'\0'
        p += bytes(-(40 + len(p)) % 8)
        nxt = len(data) + 40 + len(p) if i + 1 < len(targets) else 0
        data += struct.pack('<QQiI16s', start, length, 0, nxt, ttype.encode()) + p
    hdr = struct.pack('<3IIIIiIII', 4, 0, 0, 312 + len(data), 312, len(targets), 0, 1 << 5, 0, 0)
    hdr += struct.pack('<Q', 0) + b'lab'.ljust(128, b'\0') + bytes(129) + bytes(7)
    hdr = hdr[:312].ljust(312, b'\0')
    return hdr + data


put('dm_table', 'seed-0', dm_status([(0, 2048, 'linear', '259:1 2048')]))
put('dm_table', 'seed-1', dm_status([(0, 64, 'linear', '8:16 0'), (64, 96, 'striped', '3 8 8:16 0 8:32 0 259:1 8'),
                                     (160, 8, 'zero', ''), (168, 8, 'crypt', 'aes-xts-plain64 0 0 8:48 0')]))
