//! Images agents send (C7): the type is sniffed from the bytes (never trusted from the file
//! name or the browser), decoded with limits (no decompression bombs), and re-encoded
//! within LINE's limits — original JPEG/PNG ≤ 10 MB, preview ≤ 1 MB. Re-encoding also
//! drops metadata such as a photo's GPS position before it leaves the call center.

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not an image (JPEG, PNG, GIF, WebP or BMP)")]
    NotAnImage,
    #[error("the image is larger than {} MB", MAX_UPLOAD_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("the image could not be read: {0}")]
    Unreadable(String),
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
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
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
