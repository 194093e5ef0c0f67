"""The media library: images editors upload for statements and intros.

Each upload is checked by its content, not its name: Pillow must open it as a PNG, JPEG,
GIF or WebP within the byte and pixel caps, and it is re-encoded, which drops EXIF and any
other metadata (a phone photo's GPS position must not reach every reader). It is stored in
the instance folder (``MEDIA_PATH``, served by the app at ``/media/<file>``) or, when
``MEDIA_S3_BUCKET`` is set, in an S3-compatible bucket; either way the library keeps the
absolute URL that mail uses (``BASE_URL`` or the bucket's public URL).
"""

from __future__ import annotations

import enum
import io
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, get_or_raise, utcnow

#: Pillow's format name → (file suffix, content type)
FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
}
#: the longest file name kept (for the library's list; the stored name is a random key)
MAX_FILENAME = 255


class MediaStorage(enum.Enum):
    LOCAL = "local"
    S3 = "s3"


class MediaItem(db.Model):  # type: ignore[name-defined]
    """One image in the library, with the absolute URL mail refers to it by."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)  # the stored file's name
    filename: Mapped[str] = mapped_column(String(MAX_FILENAME))  # as uploaded, for people
    content_type: Mapped[str] = mapped_column(String(50))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)  # bytes, as stored
    storage: Mapped[MediaStorage] = mapped_column(enum_column(MediaStorage))
    url: Mapped[str] = mapped_column(String(1000))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def markdown(self) -> str:
        """The Markdown that shows this image."""
        alt = Path(self.filename).stem.replace("]", "").replace("[", "")
        return f"![{alt}]({self.url})"

    def __repr__(self) -> str:
        return f"<MediaItem {self.id} {self.key}>"


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed the checks, re-encoded."""

    data: bytes
    suffix: str
    content_type: str
    width: int
    height: int


def check_image(data: bytes) -> CheckedImage:
    """Open ``data`` as an image and re-encode it without its metadata.

    :raises ValidationError: not an image, a format not allowed, too many bytes or pixels
        (``field`` is ``file``).
    """
    max_bytes = int(current_app.config["MEDIA_MAX_BYTES"])
    max_side = int(current_app.config["MEDIA_MAX_PIXELS"])
    if len(data) > max_bytes:
        raise ValidationError(
            f"The image is {len(data):,} bytes; at most {max_bytes:,} are allowed.", field="file"
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format or ""
            width, height = probe.size
            if kind not in FORMATS:
                raise ValidationError(
                    f"{kind or 'This'} images are not allowed: PNG, JPEG, GIF or WebP only.",
                    field="file",
                )
            if max(width, height) > max_side:
                raise ValidationError(
                    f"The image is {width}×{height} pixels; at most {max_side} on a side.",
                    field="file",
                )
            probe.verify()  # the whole file, not just its header
        # verify() leaves the image unusable: open it again to decode it.
        with Image.open(io.BytesIO(data)) as image:
            encoded = _reencode(image, kind)
    except ValidationError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationError(
            "The file is not an image Pillow can read (PNG, JPEG, GIF or WebP).", field="file"
        ) from None
    suffix, content_type = FORMATS[kind]
    return CheckedImage(encoded, suffix, content_type, width, height)


def _reencode(image: Image.Image, kind: str) -> bytes:
    """The image written afresh: pixels kept, EXIF, XMP and comments left behind."""
    out = io.BytesIO()
    if kind == "JPEG":
        upright = ImageOps.exif_transpose(image)  # keep the orientation EXIF told
        upright.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
    elif kind == "GIF":
        frames = getattr(image, "n_frames", 1)
        image.save(out, "GIF", save_all=frames > 1, optimize=False)
    elif kind == "WEBP":
        image.save(out, "WEBP", quality=88, save_all=getattr(image, "n_frames", 1) > 1)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def upload(data: bytes, filename: str, *, user_id: int | None = None) -> MediaItem:
    """Check, store and record one image.

    :raises ValidationError: see ``check_image``.
    """
    checked = check_image(data)
    key = f"{secrets.token_urlsafe(12)}.{checked.suffix}"
    backend = storage_backend()
    url = backend.put(key, checked.data, checked.content_type)
    item = MediaItem(
        key=key,
        filename=(Path(filename).name or "image")[:MAX_FILENAME],
        content_type=checked.content_type,
        width=checked.width,
        height=checked.height,
        size=len(checked.data),
        storage=backend.kind,
        url=url,
        uploaded_by=user_id,
    )
    db.session.add(item)
    db.session.commit()
    return item


def list_media() -> list[MediaItem]:
    """Every image, newest first."""
    return list(db.session.scalars(select(MediaItem).order_by(MediaItem.id.desc())))


def get_media(media_id: int) -> MediaItem:
    """The image with this id.

    :raises NotFound: no such image.
    """
    return get_or_raise(MediaItem, media_id, "image")


def delete_media(media_id: int) -> None:
    """Remove an image from the library and its storage (mail already sent keeps a broken
    image, so the admin page asks first)."""
    item = get_media(media_id)
    backend = storage_backend(item.storage)
    backend.delete(item.key)
    db.session.delete(item)
    db.session.commit()


def find_by_url(url: str) -> MediaItem | None:
    """The library's image at this absolute URL, if it is one of ours."""
    return db.session.scalar(select(MediaItem).where(MediaItem.url == url))


# --- storage ------------------------------------------------------------------------------


class LocalStorage:
    """Files in the instance folder, served by the app at ``/media/<key>``."""

    kind = MediaStorage.LOCAL

    def __init__(self, folder: Path, base_url: str) -> None:
        self.folder = folder
        self.base_url = base_url.rstrip("/")

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / key).write_bytes(data)
        return f"{self.base_url}/media/{key}"

    def delete(self, key: str) -> None:
        (self.folder / key).unlink(missing_ok=True)


class S3Storage:
    """An S3-compatible bucket (AWS, MinIO, Garage …), objects publicly readable by URL."""

    kind = MediaStorage.S3

    def __init__(self, config: Any) -> None:
        import boto3

        self.bucket = str(config["MEDIA_S3_BUCKET"])
        endpoint = config.get("MEDIA_S3_ENDPOINT") or None
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=config.get("MEDIA_S3_ACCESS_KEY") or None,
            aws_secret_access_key=config.get("MEDIA_S3_SECRET_KEY") or None,
            region_name=config.get("MEDIA_S3_REGION") or "us-east-1",
        )
        public = config.get("MEDIA_S3_PUBLIC_URL")
        if not public:
            base = (endpoint or f"https://s3.{self.client.meta.region_name}.amazonaws.com")
            public = f"{base.rstrip('/')}/{self.bucket}"
        self.public_url = str(public).rstrip("/")
        self.acl = str(config.get("MEDIA_S3_ACL") or "")

    def put(self, key: str, data: bytes, content_type: str) -> str:
        extra = {"ACL": self.acl} if self.acl else {}
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl="public, max-age=31536000, immutable",  # a key is never reused
            **extra,
        )
        return f"{self.public_url}/{key}"

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def media_folder() -> Path:
    """Where local media files live (``MEDIA_PATH``, else ``media`` in the instance folder)."""
    configured = current_app.config.get("MEDIA_PATH")
    return Path(configured) if configured else Path(current_app.instance_path) / "media"


def storage_backend(kind: MediaStorage | None = None) -> LocalStorage | S3Storage:
    """The configured storage (or the one of ``kind``, for an image stored before)."""
    config = current_app.config
    use_s3 = bool(config.get("MEDIA_S3_BUCKET")) if kind is None else kind is MediaStorage.S3
    if use_s3:
        return S3Storage(config)
    return LocalStorage(media_folder(), str(config["BASE_URL"]))
