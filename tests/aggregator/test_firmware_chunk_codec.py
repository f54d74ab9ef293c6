"""The hand-encoded FirmwareChunk.data message is the protobuf wire form (encoding guide, LEN)."""

import pytest

from chargeport.v1 import link_pb2 as pb
from main_node.remote_board import encode_firmware_data

# Varint length boundaries: 1, 2, 3 and 4 length bytes, and the rollout's 1 MiB chunk.
SIZES = [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
def test_encoding_matches_protobuf_bytes_for_bytes(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert encode_firmware_data(data) == pb.FirmwareChunk(data=data).SerializeToString()


@pytest.mark.parametrize("size", [0, *SIZES])
def test_encoding_parses_back_to_the_same_chunk(size: int) -> None:
    # An empty field is omitted by protobuf but may be sent explicitly: it parses the same.
    data = b"\xa5" * size
    msg = pb.FirmwareChunk.FromString(encode_firmware_data(data))
    assert msg.data == data
    assert msg.total_size == 0
