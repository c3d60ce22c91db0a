//! Multimodal rotary position ids (`get_rope_index` in transformers).
//!
//! Text tokens advance all three rows (temporal, height, width) together. An image's tokens
//! take `start + (t, y, x)` over its merged grid, after which the text position continues at
//! `start + max(h, w) / merge` — an image advances positions by its side, not by its token
//! count.

use crate::composition::Positions;
use crate::error::{Error, Result};

/// # Arguments
/// - `grids`: `[t, h, w]` in patches of each image, in the order they appear in `ids`.
pub fn rope_index(
    ids: &[u32],
    image_token_id: u32,
    grids: &[[usize; 3]],
    merge: usize,
) -> Result<Positions> {
    let mut rows: Vec<Vec<i64>> = (0..3).map(|_| Vec::with_capacity(ids.len())).collect();
    let mut images = grids.iter();
    let mut current = 0i64;
    let mut i = 0;
    while i < ids.len() {
        if ids[i] != image_token_id {
            for row in &mut rows {
                row.push(current);
            }
            current += 1;
            i += 1;
            continue;
        }
        let run = ids[i..]
            .iter()
            .take_while(|&&t| t == image_token_id)
            .count();
        let &[t, h, w] = images.next().ok_or_else(|| {
            Error::Input(format!(
                "image tokens at position {i} but only {} image grids",
                grids.len()
            ))
        })?;
        let (mh, mw) = (h / merge, w / merge);
        if run != t * mh * mw {
            return Err(Error::Input(format!(
                "{run} image tokens at position {i}, but grid {:?} needs {}",
                [t, h, w],
                t * mh * mw
            )));
        }
        for frame in 0..t as i64 {
            for y in 0..mh as i64 {
                for x in 0..mw as i64 {
                    rows[0].push(current + frame);
                    rows[1].push(current + y);
                    rows[2].push(current + x);
                }
            }
        }
        current += mh.max(mw) as i64;
        i += run;
    }
    if images.next().is_some() {
        return Err(Error::Input(format!(
            "{} image grids given but fewer images in the token ids",
            grids.len()
        )));
    }
    // Decoding continues after the largest position, not after the token count.
    let next = rows
        .iter()
        .flatten()
        .copied()
        .max()
        .map_or(0, |max| max + 1);
    Ok(Positions { rows, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_advances_by_its_side_not_its_token_count() {
        // text, 2 text, image 1×4×6 patches (2×3 merged), text
        let ids = [1, 2, 9, 9, 9, 9, 9, 9, 3];
        let p = rope_index(&ids, 9, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(p.rows[0], vec![0, 1, 2, 2, 2, 2, 2, 2, 5]);
        assert_eq!(p.rows[1], vec![0, 1, 2, 2, 2, 3, 3, 3, 5]);
        assert_eq!(p.rows[2], vec![0, 1, 2, 3, 4, 2, 3, 4, 5]);
        assert_eq!(p.next, 6);
    }

    #[test]
    fn token_count_must_match_the_grid() {
        let err = rope_index(&[9, 9, 9], 9, &[[1, 4, 4]], 2).unwrap_err();
        assert!(err.to_string().contains("needs 4"), "{err}");
        assert!(rope_index(&[1, 2], 9, &[[1, 2, 2]], 2).is_err());
    }
}
