package gemm

// packA copies the block op(A)[ic:ic+mc, pc:pc+kc] into dst as ⌈mc/mr⌉
// micro-panels of kc steps × mr rows (row index fastest), zero-padding the
// last panel's missing rows. The kernel then reads A strictly sequentially.
// With the assembly kernel, full panels are moved by the SIMD helpers in
// pack_amd64.s; the bounds are checked here first.
func packA(dst []float32, transA bool, a []float32, lda, ic, mc, pc, kc int) {
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		panel := dst[ir*kc : ir*kc+mr*kc]
		if transA {
			// op(A)[i][p] = a[p*lda+i]: each step is a contiguous run of rows.
			base := pc*lda + ic + ir
			if rows == mr {
				_ = a[base+(kc-1)*lda+mr-1]
				if useAsm {
					copy6(&panel[0], &a[base], kc, lda)
					continue
				}
				for p := 0; p < kc; p++ {
					s := a[base+p*lda : base+p*lda+mr]
					d := panel[p*mr : p*mr+mr]
					d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
				}
				continue
			}
			for p := 0; p < kc; p++ {
				d := panel[p*mr : p*mr+mr]
				n := copy(d[:rows], a[base+p*lda:])
				clear(d[n:])
			}
			continue
		}
		// op(A)[i][p] = a[i*lda+p]: gather one element from each of mr rows.
		if rows == mr {
			base := (ic+ir)*lda + pc
			_ = a[base+(mr-1)*lda+kc-1]
			p0 := 0
			if useAsm {
				p0 = kc &^ 3
				if p0 > 0 {
					gather6(&panel[0], &a[base], p0, lda)
				}
			}
			r0 := a[base : base+kc]
			r1 := a[base+lda : base+lda+kc]
			r2 := a[base+2*lda : base+2*lda+kc]
			r3 := a[base+3*lda : base+3*lda+kc]
			r4 := a[base+4*lda : base+4*lda+kc]
			r5 := a[base+5*lda : base+5*lda+kc]
			for p := p0; p < kc; p++ {
				d := panel[p*mr : p*mr+mr]
				d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		clear(panel)
		for i := 0; i < rows; i++ {
			row := a[(ic+ir+i)*lda+pc:]
			row = row[:kc]
			for p, v := range row {
				panel[p*mr+i] = v
			}
		}
	}
}

// packB copies the block op(B)[pc:pc+kc, jc:jc+nc] into dst as ⌈nc/nr⌉
// micro-panels of kc steps × nr columns, zero-padding the last panel's
// missing columns.
func packB(dst []float32, transB bool, b []float32, ldb, pc, kc, jc, nc int) {
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		panel := dst[jr*kc : jr*kc+nr*kc]
		if !transB {
			// op(B)[p][j] = b[p*ldb+j]: each step is a contiguous run.
			base := pc*ldb + jc + jr
			if cols == nr {
				_ = b[base+(kc-1)*ldb+nr-1]
				if useAsm {
					copy16(&panel[0], &b[base], kc, ldb)
					continue
				}
				for p := 0; p < kc; p++ {
					s := b[base+p*ldb : base+p*ldb+nr]
					d := panel[p*nr : p*nr+nr]
					for j := range d {
						d[j] = s[j]
					}
				}
				continue
			}
			for p := 0; p < kc; p++ {
				d := panel[p*nr : p*nr+nr]
				n := copy(d[:cols], b[base+p*ldb:])
				clear(d[n:])
			}
			continue
		}
		// op(B)[p][j] = b[j*ldb+p]: each column of the panel is a row of b.
		if cols < nr {
			clear(panel)
		}
		j0 := 0
		if useAsm && kc >= 4 {
			// Groups of four rows of b through a 4×4 transpose.
			kc4 := kc &^ 3
			for ; j0+4 <= cols; j0 += 4 {
				base := (jc+jr+j0)*ldb + pc
				_ = b[base+3*ldb+kc-1]
				gather4(&panel[j0], &b[base], kc4, ldb, nr)
				for j := j0; j < j0+4; j++ {
					row := b[(jc+jr+j)*ldb+pc:]
					for p := kc4; p < kc; p++ {
						panel[p*nr+j] = row[p]
					}
				}
			}
		}
		for j := j0; j < cols; j++ {
			row := b[(jc+jr+j)*ldb+pc:]
			row = row[:kc]
			for p, v := range row {
				panel[p*nr+j] = v
			}
		}
	}
}
