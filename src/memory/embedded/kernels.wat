;; The memory engine's kernels, in WebAssembly with 128-bit SIMD: the two loops of a large user's dense search
;; (src/memory/embedded/sign-codes.ts) and recall's related-word cosines (src/memory/related-words.ts). Compiled by
;; `npm run build:kernels` into kernels-wasm.ts; a unit test keeps the two equal. All offsets are byte offsets into
;; the module's memory, 16-byte aligned.
(module
  (memory (export "memory") 1)

  ;; Hamming distances of `count` binary codes (`stride` 16-byte chunks each, from `codes`) to the query code at
  ;; `query`: u16 per slot into `out`, and how many slots have each distance into the u32 `histogram` (zeroed by the
  ;; caller). A slot whose byte at `alive` + slot is 0 gets `dead` instead (no check when `alive` is -1). Byte lanes
  ;; count at most 8 set bits per chunk, so `stride` must stay under 32.
  (func (export "hamming")
    (param $codes i32) (param $count i32) (param $stride i32) (param $query i32)
    (param $alive i32) (param $dead i32) (param $out i32) (param $histogram i32)
    (local $slot i32) (local $k i32) (local $p i32) (local $acc v128) (local $sum v128) (local $d i32) (local $h i32)
    (local.set $p (local.get $codes))
    (block $done
      (loop $slots
        (br_if $done (i32.ge_u (local.get $slot) (local.get $count)))
        (local.set $acc (v128.const i64x2 0 0))
        (local.set $k (i32.const 0))
        (loop $chunks
          (local.set $acc
            (i8x16.add (local.get $acc)
              (i8x16.popcnt
                (v128.xor
                  (v128.load (i32.add (local.get $p) (i32.shl (local.get $k) (i32.const 4))))
                  (v128.load (i32.add (local.get $query) (i32.shl (local.get $k) (i32.const 4))))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $chunks (i32.lt_u (local.get $k) (local.get $stride))))
        (local.set $sum (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (local.get $acc))))
        (local.set $d
          (i32.add
            (i32.add (i32x4.extract_lane 0 (local.get $sum)) (i32x4.extract_lane 1 (local.get $sum)))
            (i32.add (i32x4.extract_lane 2 (local.get $sum)) (i32x4.extract_lane 3 (local.get $sum)))))
        (if (i32.ne (local.get $alive) (i32.const -1))
          (then
            (if (i32.eqz (i32.load8_u (i32.add (local.get $alive) (local.get $slot))))
              (then (local.set $d (local.get $dead))))))
        (i32.store16 (i32.add (local.get $out) (i32.shl (local.get $slot) (i32.const 1))) (local.get $d))
        (local.set $h (i32.add (local.get $histogram) (i32.shl (local.get $d) (i32.const 2))))
        (i32.store (local.get $h) (i32.add (i32.load (local.get $h)) (i32.const 1)))
        (local.set $p (i32.add (local.get $p) (i32.shl (local.get $stride) (i32.const 4))))
        (local.set $slot (i32.add (local.get $slot) (i32.const 1)))
        (br $slots))))

  ;; The slots (i32, into `out`, in slot order) whose u16 distance at `distances` is under `cutoff`, then the first
  ;; `atCutoff` of those at it. Returns how many.
  (func (export "select")
    (param $distances i32) (param $count i32) (param $cutoff i32) (param $atCutoff i32) (param $out i32)
    (result i32)
    (local $slot i32) (local $n i32) (local $d i32)
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $slot) (local.get $count)))
        (local.set $d (i32.load16_u (i32.add (local.get $distances) (i32.shl (local.get $slot) (i32.const 1)))))
        (if (i32.le_u (local.get $d) (local.get $cutoff))
          (then
            (if (i32.lt_u (local.get $d) (local.get $cutoff))
              (then
                (i32.store (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))) (local.get $slot))
                (local.set $n (i32.add (local.get $n) (i32.const 1))))
              (else
                (if (i32.gt_s (local.get $atCutoff) (i32.const 0))
                  (then
                    (local.set $atCutoff (i32.sub (local.get $atCutoff) (i32.const 1)))
                    (i32.store (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))) (local.get $slot))
                    (local.set $n (i32.add (local.get $n) (i32.const 1)))))))))
        (local.set $slot (i32.add (local.get $slot) (i32.const 1)))
        (br $each)))
    (local.get $n))

  ;; Dot products of the int8 vectors (`width` bytes each, a multiple of 16, from `vectors`) of the `count` slots
  ;; listed (i32) at `slots` with the int16 query at `query` (`width` elements): i32 per slot into `out`. With
  ;; |query| < 8192 a sum stays within 32 bits up to 4,096 dimensions.
  (func (export "dots")
    (param $vectors i32) (param $width i32) (param $slots i32) (param $count i32) (param $query i32) (param $out i32)
    (local $i i32) (local $k i32) (local $v i32) (local $acc v128) (local $chunk v128) (local $q i32)
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $v
          (i32.add (local.get $vectors)
            (i32.mul
              (i32.load (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2))))
              (local.get $width))))
        (local.set $acc (v128.const i64x2 0 0))
        (local.set $k (i32.const 0))
        (loop $chunks
          (local.set $chunk (v128.load (i32.add (local.get $v) (local.get $k))))
          (local.set $q (i32.add (local.get $query) (i32.shl (local.get $k) (i32.const 1))))
          (local.set $acc
            (i32x4.add (local.get $acc)
              (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $chunk)) (v128.load (local.get $q)))))
          (local.set $acc
            (i32x4.add (local.get $acc)
              (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $chunk)) (v128.load offset=16 (local.get $q)))))
          (local.set $k (i32.add (local.get $k) (i32.const 16)))
          (br_if $chunks (i32.lt_u (local.get $k) (local.get $width))))
        (i32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2)))
          (i32.add
            (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
            (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each))))

  ;; Dot products of int16 rows of a table (`width` bytes apart, a multiple of 16, from `table`): each of the `count`
  ;; rows listed (i32 row numbers) at `rows` with each of the `queries` rows listed at `query`, i32 per pair, row by
  ;; row into `out`. For unit vectors scaled to at most 32,767 every partial sum stays within 32 bits (Cauchy–Schwarz
  ;; bounds it by 32,767²). Related-word coverage (src/memory/related-words.ts) over the built-in word vectors.
  (func (export "dots16")
    (param $table i32) (param $width i32) (param $rows i32) (param $count i32) (param $query i32) (param $queries i32)
    (param $out i32)
    (local $i i32) (local $j i32) (local $k i32) (local $row i32) (local $q i32) (local $acc v128)
    (block $done
      (loop $each_row
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $row
          (i32.add (local.get $table)
            (i32.mul (i32.load (i32.add (local.get $rows) (i32.shl (local.get $i) (i32.const 2)))) (local.get $width))))
        (local.set $j (i32.const 0))
        (block $row_done
          (loop $each_query
            (br_if $row_done (i32.ge_u (local.get $j) (local.get $queries)))
            (local.set $q
              (i32.add (local.get $table)
                (i32.mul
                  (i32.load (i32.add (local.get $query) (i32.shl (local.get $j) (i32.const 2))))
                  (local.get $width))))
            (local.set $acc (v128.const i64x2 0 0))
            (local.set $k (i32.const 0))
            (loop $chunks
              (local.set $acc
                (i32x4.add (local.get $acc)
                  (i32x4.dot_i16x8_s
                    (v128.load (i32.add (local.get $row) (local.get $k)))
                    (v128.load (i32.add (local.get $q) (local.get $k))))))
              (local.set $k (i32.add (local.get $k) (i32.const 16)))
              (br_if $chunks (i32.lt_u (local.get $k) (local.get $width))))
            (i32.store (local.get $out)
              (i32.add
                (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
                (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $each_query)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each_row)))))
