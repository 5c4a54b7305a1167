//! Bad inputs give errors that name the file, the config field or the counts; nothing panics.

use std::path::{Path, PathBuf};

use iris_models::image::{
    self, expand_prompt, load_image, ImageError, PreprocessorConfig, PromptTokens, RgbImage,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images")
        .join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG header (signature + IHDR) declaring width x height, no image data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&chunk);
    v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    v
}

fn expect_err(path: &Path) -> ImageError {
    match load_image(path) {
        Ok(img) => panic!("{} loaded as {}x{}", path.display(), img.width, img.height),
        Err(e) => {
            let msg = e.to_string();
            println!("{msg}");
            assert!(
                msg.contains(&path.display().to_string()),
                "no path in: {msg}"
            );
            e
        }
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = expect_err(&dir.path().join("nope.png"));
    assert!(matches!(e, ImageError::Io { .. }), "{e:?}");
}

#[test]
fn corrupt_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = png_header(64, 64);
    bytes.extend_from_slice(b"\0\0\0\x10IDATgarbage-garbage-garbage");
    let e = expect_err(&write(dir.path(), "corrupt.png", &bytes));
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");
    let e = expect_err(&write(dir.path(), "empty.png", b""));
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");
}

#[test]
fn truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "photo_640x480.png",
        "wide_1024x256.webp",
        "square_800x800.jpg",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for keep in [bytes.len() / 2, 40, 5] {
            let p = write(dir.path(), &format!("cut{keep}_{name}"), &bytes[..keep]);
            let e = expect_err(&p);
            assert!(
                matches!(e, ImageError::Corrupt { .. }),
                "{name} cut to {keep}: {e:?}"
            );
        }
    }
}

#[test]
fn unsupported_formats() {
    let dir = tempfile::tempdir().unwrap();
    // A GIF renamed .png: the content decides.
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let e = expect_err(&write(dir.path(), "really_a_gif.png", gif));
    assert!(matches!(e, ImageError::Unsupported { .. }), "{e:?}");
    let e = expect_err(&write(
        dir.path(),
        "notes.png",
        b"just some text, not an image\n",
    ));
    assert!(matches!(e, ImageError::Unsupported { .. }), "{e:?}");
    let e = expect_err(&write(
        dir.path(),
        "bitmap.jpg",
        b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0",
    ));
    assert!(matches!(e, ImageError::Unsupported { .. }), "{e:?}");
}

#[test]
fn zero_sized_and_huge_images() {
    let dir = tempfile::tempdir().unwrap();
    let e = expect_err(&write(dir.path(), "zero.png", &png_header(0, 10)));
    assert!(matches!(e, ImageError::ZeroSize { .. }), "{e:?}");
    let e = expect_err(&write(
        dir.path(),
        "bomb.png",
        &png_header(100_000, 100_000),
    ));
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("16384"));
}

#[test]
fn alpha_and_formats_load() {
    // Every fixture decodes; the RGBA one is composited onto white (HF convert_to_rgb).
    for name in [
        "photo_640x480.png",
        "tall_333x517.png",
        "wide_1024x256.webp",
        "small_97x113.png",
        "square_800x800.jpg",
        "alpha_120x90.png",
    ] {
        let img = load_image(fixture(name)).unwrap();
        assert_eq!(img.data.len(), img.width * img.height * 3, "{name}");
    }
    let comp = load_image(fixture("alpha_120x90.png")).unwrap();
    let drop = image::load_image_with(fixture("alpha_120x90.png"), image::AlphaMode::Drop).unwrap();
    // Bottom-left quarter is fully transparent: white when composited.
    assert_eq!(comp.pixel(0, 89), [255, 255, 255]);
    assert_ne!(drop.pixel(0, 89), [255, 255, 255]);
    // Top rows are opaque: both modes agree.
    assert_eq!(comp.pixel(60, 0), drop.pixel(60, 0));
}

#[test]
fn mismatched_image_markers() {
    let t = PromptTokens::default();
    let e = expect_prompt_err(expand_prompt("<image><image> two", &[(0, 0)], 64, &t));
    assert!(e.contains('2') && e.contains('1'), "{e}");
    let e = expect_prompt_err(expand_prompt("no marker", &[(2, 2)], 64, &t));
    assert!(
        e.contains("0 `<image>` marker") && e.contains("1 image"),
        "{e}"
    );
}

fn expect_prompt_err(r: image::Result<String>) -> String {
    let e = r.expect_err("count mismatch must fail");
    assert!(matches!(e, ImageError::ImageCountMismatch { .. }), "{e:?}");
    println!("{e}");
    e.to_string()
}

#[test]
fn config_errors_name_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"image_processor_type": "CLIPImageProcessor", "resample": 7}"#,
            "resample",
        ),
        (
            r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": -3}}"#,
            "size",
        ),
        (
            r#"{"image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.0, 0.5]}"#,
            "image_std",
        ),
        (
            r#"{"image_processor_type": "SiglipImageProcessor", "image_mean": [0.5, 0.5]}"#,
            "image_mean",
        ),
        (
            r#"{"image_processor_type": "CLIPImageProcessor", "rescale_factor": "x"}"#,
            "rescale_factor",
        ),
        (
            r#"{"image_processor_type": "CLIPImageProcessor", "crop_size": {"height": 5}}"#,
            "crop_size",
        ),
        (r#"{"do_resize": true}"#, "image_processor_type"),
    ];
    let img = RgbImage::new(4, 4, vec![7; 48]).unwrap();
    for (i, (json, field)) in cases.iter().enumerate() {
        let p = write(dir.path(), &format!("cfg{i}.json"), json.as_bytes());
        let msg = match PreprocessorConfig::from_file(&p) {
            Err(e) => e.to_string(),
            Ok(cfg) => image::preprocess(&cfg, std::slice::from_ref(&img))
                .unwrap_err()
                .to_string(),
        };
        println!("{msg}");
        assert!(msg.contains(&p.display().to_string()), "no path in: {msg}");
        assert!(msg.contains(field), "no field {field} in: {msg}");
    }
    let p = write(dir.path(), "bad.json", b"{not json");
    assert!(PreprocessorConfig::from_file(&p)
        .unwrap_err()
        .to_string()
        .contains("bad.json"));
}

#[test]
fn unknown_processor_type() {
    let cfg = PreprocessorConfig {
        image_processor_type: Some("LlavaNextImageProcessor".into()),
        ..Default::default()
    };
    let img = RgbImage::new(2, 2, vec![0; 12]).unwrap();
    let msg = image::preprocess(&cfg, &[img]).unwrap_err().to_string();
    assert!(
        msg.contains("LlavaNextImageProcessor") && msg.contains("CLIPImageProcessor"),
        "{msg}"
    );
}
