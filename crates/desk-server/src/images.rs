//! Images agents send (C7): the type is sniffed from the bytes (never trusted from the file
//! name or the browser), decoded with limits (no decompression bombs), and re-encoded
//! within LINE's limits — original JPEG/PNG ≤ 10 MB, preview ≤ 1 MB. Re-encoding also
//! drops metadata such as a photo's GPS position before it leaves the call center.
//!
//! Decoding is bounded (issue 9, item 8: a 16384×8192 PNG cost ~1 GB, three at once 6.3 GB):
//! the picture's size is read from its header first and more than [`MAX_DECODE_PIXELS`] is
//! refused before any pixel is decoded, the decoder may allocate at most
//! [`MAX_DECODE_ALLOC`], and [`ImageWork`] runs one decode at a time (a few more wait;
//! beyond that the upload is refused as busy).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// What an upload may be at most, before any processing.
pub const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;
/// LINE's limits for image messages.
pub const MAX_ORIGINAL_BYTES: usize = 10 * 1024 * 1024;
pub const MAX_PREVIEW_BYTES: usize = 1024 * 1024;
/// Longest side of the original we send; larger photos are scaled down.
const MAX_ORIGINAL_SIDE: u32 = 4096;
/// Longest side of the preview LINE shows in the chat.
const PREVIEW_SIDE: u32 = 1024;
/// Decoding refuses pictures larger than this (pixels per side), whatever the file size.
const MAX_DECODE_SIDE: u32 = 16_384;
/// … and more pixels than this in all (25 megapixels: a 6000×4000 photo; a phone's usual
/// 12 MP photo is far below). Decoded as RGBA that is at most 100 MB.
pub const MAX_DECODE_PIXELS: u64 = 25_000_000;
/// What the decoder may allocate at most.
const MAX_DECODE_ALLOC: u64 = 128 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not an image (JPEG, PNG, GIF, WebP or BMP)")]
    NotAnImage,
    #[error("the image is larger than {} MB", MAX_UPLOAD_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("the image could not be read: {0}")]
    Unreadable(String),
    #[error("the image has too many pixels (at most {} megapixels)", MAX_DECODE_PIXELS / 1_000_000)]
    TooManyPixels,
    #[error("the desk is busy preparing other images; try again in a moment")]
    Busy,
}

/// An image ready for LINE.
pub struct Prepared {
    pub original: Vec<u8>,
    pub original_type: &'static str,
    pub preview: Vec<u8>,
    pub preview_type: &'static str,
}

/// Checks and re-encodes an uploaded image. CPU-bound: call it from `spawn_blocking`.
pub fn prepare(bytes: &[u8]) -> Result<Prepared, ImageError> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(ImageError::TooLarge);
    }
    let format = match infer::get(bytes).map(|t| t.mime_type()) {
        Some("image/jpeg") => ImageFormat::Jpeg,
        Some("image/png") => ImageFormat::Png,
        Some("image/gif") => ImageFormat::Gif,
        Some("image/webp") => ImageFormat::WebP,
        Some("image/bmp") => ImageFormat::Bmp,
        _ => return Err(ImageError::NotAnImage),
    };
    // The size from the header, before a single pixel is decoded.
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ImageError::Unreadable(e.to_string()))?;
    if u64::from(width) * u64::from(height) > MAX_DECODE_PIXELS
        || width > MAX_DECODE_SIDE
        || height > MAX_DECODE_SIDE
    {
        return Err(ImageError::TooManyPixels);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| ImageError::Unreadable(e.to_string()))?;
    let img = fit(img, MAX_ORIGINAL_SIDE);
    // PNG keeps transparency and sharp edges (screenshots); photos go as JPEG.
    let keep_png = img.color().has_alpha() || format == ImageFormat::Png;
    let (original, original_type) = encode_within(&img, keep_png, MAX_ORIGINAL_BYTES)?;
    let (preview, preview_type) = encode_within(&fit(img, PREVIEW_SIDE), false, MAX_PREVIEW_BYTES)?;
    Ok(Prepared {
        original,
        original_type,
        preview,
        preview_type,
    })
}

/// Runs [`prepare`] for uploads, one at a time ([`ImageWork::WAITING`] more may wait).
#[derive(Clone)]
pub struct ImageWork {
    line: std::sync::Arc<tokio::sync::Semaphore>,
    running: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for ImageWork {
    fn default() -> ImageWork {
        ImageWork {
            line: std::sync::Arc::new(tokio::sync::Semaphore::new(1 + Self::WAITING)),
            running: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

impl ImageWork {
    /// Uploads that may wait for the decoder.
    pub const WAITING: usize = 8;

    /// [`prepare`] on the blocking pool, when the decoder is free.
    pub async fn prepare(&self, bytes: bytes::Bytes) -> Result<Prepared, ImageError> {
        let _place = self
            .line
            .clone()
            .try_acquire_owned()
            .map_err(|_| ImageError::Busy)?;
        let _running = self.running.acquire().await.map_err(|_| ImageError::Busy)?;
        tokio::task::spawn_blocking(move || prepare(&bytes))
            .await
            .map_err(|e| ImageError::Unreadable(e.to_string()))?
    }
}

fn fit(img: DynamicImage, side: u32) -> DynamicImage {
    if img.width() > side || img.height() > side {
        img.resize(side, side, image::imageops::FilterType::Triangle)
    } else {
        img
    }
}

/// Encodes as PNG when asked and small enough, else as JPEG at falling quality (and, as a
/// last resort, smaller) until it fits `max`.
fn encode_within(
    img: &DynamicImage,
    png: bool,
    max: usize,
) -> Result<(Vec<u8>, &'static str), ImageError> {
    if png {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png)
            .map_err(|e| ImageError::Unreadable(e.to_string()))?;
        if out.get_ref().len() <= max {
            return Ok((out.into_inner(), "image/png"));
        }
    }
    let mut img = DynamicImage::ImageRgb8(img.to_rgb8());
    loop {
        for quality in [88u8, 75, 60, 45] {
            let mut out = Vec::new();
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
            img.write_with_encoder(enc)
                .map_err(|e| ImageError::Unreadable(e.to_string()))?;
            if out.len() <= max {
                return Ok((out, "image/jpeg"));
            }
        }
        img = img.resize(
            img.width() * 3 / 4,
            img.height() * 3 / 4,
            image::imageops::FilterType::Triangle,
        );
    }
}

/// A valid PNG of `w`×`h` one-bit pixels, all black, written by hand (stored deflate
/// blocks), so a picture of a hundred million pixels costs a few MB: what the upload limits
/// are tested and measured with (tests of this crate and of the binary's memory bounds).
pub fn huge_bilevel_png(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for b in bytes {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let row = 1 + (w as usize).div_ceil(8);
    let raw = vec![0u8; row * h as usize];
    let mut z = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        z.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        z.extend(len.to_le_bytes());
        z.extend((!len).to_le_bytes());
        z.extend(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + u32::from(*x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([1, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 7, 200]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_png_stays_png_and_gets_a_jpeg_preview_within_limits() {
        let p = prepare(&png(2000, 1500)).unwrap();
        assert_eq!(p.original_type, "image/png");
        assert_eq!(p.preview_type, "image/jpeg");
        assert!(p.original.len() <= MAX_ORIGINAL_BYTES);
        assert!(p.preview.len() <= MAX_PREVIEW_BYTES);
        let preview = image::load_from_memory(&p.preview).unwrap();
        assert_eq!((preview.width(), preview.height()), (1024, 768));
    }

    #[test]
    fn a_non_image_or_a_broken_image_is_refused() {
        assert_eq!(
            prepare(b"%PDF-1.4 not a picture").err(),
            Some(ImageError::NotAnImage)
        );
        assert_eq!(
            prepare(b"<svg xmlns='http://www.w3.org/2000/svg'/>").err(),
            Some(ImageError::NotAnImage)
        );
        let mut broken = png(10, 10);
        broken.truncate(40);
        assert!(matches!(prepare(&broken), Err(ImageError::Unreadable(_))));
        assert_eq!(
            prepare(&vec![0u8; MAX_UPLOAD_BYTES + 1]).err(),
            Some(ImageError::TooLarge)
        );
    }

    #[test]
    fn a_picture_of_too_many_pixels_is_refused_before_decoding() {
        let small = huge_bilevel_png(64, 32);
        assert_eq!(
            image::load_from_memory(&small).unwrap().width(),
            64,
            "a real PNG"
        );
        assert!(prepare(&small).is_ok());
        let bomb = huge_bilevel_png(16_384, 8_192);
        assert!(bomb.len() < MAX_UPLOAD_BYTES, "{}", bomb.len());
        assert_eq!(prepare(&bomb).err(), Some(ImageError::TooManyPixels));
        assert_eq!(
            prepare(&huge_bilevel_png(6_000, 4_200)).err(),
            Some(ImageError::TooManyPixels)
        );
    }

    #[test]
    fn a_huge_noisy_photo_is_squeezed_under_the_limits() {
        let img = image::RgbImage::from_fn(2400, 1800, |x, y| {
            let v = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) as u8;
            image::Rgb([v, v.rotate_left(3), v.rotate_left(5)])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
            .encode_image(&img)
            .unwrap();
        assert!(
            jpeg.len() > MAX_ORIGINAL_BYTES && jpeg.len() < MAX_UPLOAD_BYTES,
            "{}",
            jpeg.len()
        );
        let p = prepare(&jpeg).unwrap();
        assert_eq!(p.original_type, "image/jpeg");
        assert!(
            p.original.len() <= MAX_ORIGINAL_BYTES,
            "{}",
            p.original.len()
        );
        assert!(p.preview.len() <= MAX_PREVIEW_BYTES);
    }
}
