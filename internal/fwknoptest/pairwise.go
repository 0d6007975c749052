package fwknoptest

import "math/rand/v2"

// pairwise returns rows (one value index per dimension) such that every allowed pair of
// values of every two dimensions appears in at least one row. allowed(row) reports whether a
// (partial) row is acceptable; unset dimensions are -1. The greedy construction is seeded, so
// the result is the same on every run and machine.
func pairwise(sizes []int, allowed func(row []int) bool, seed uint64) [][]int {
	type pair struct{ i, a, j, b int }
	uncovered := map[pair]bool{}
	probe := make([]int, len(sizes))
	for i := range sizes {
		for j := i + 1; j < len(sizes); j++ {
			for a := range sizes[i] {
				for b := range sizes[j] {
					for k := range probe {
						probe[k] = -1
					}
					probe[i], probe[j] = a, b
					if allowed(probe) {
						uncovered[pair{i, a, j, b}] = true
					}
				}
			}
		}
	}
	gain := func(row []int) int {
		n := 0
		for i := range row {
			for j := i + 1; j < len(row); j++ {
				if row[i] >= 0 && row[j] >= 0 && uncovered[pair{i, row[i], j, row[j]}] {
					n++
				}
			}
		}
		return n
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5e5a3e))
	var rows [][]int
	for len(uncovered) > 0 {
		// Seed candidates from a deterministic uncovered pair (maps iterate randomly).
		var first pair
		found := false
		for i := range sizes {
			for j := i + 1; j < len(sizes) && !found; j++ {
				for a := 0; a < sizes[i] && !found; a++ {
					for b := 0; b < sizes[j] && !found; b++ {
						if uncovered[pair{i, a, j, b}] {
							first, found = pair{i, a, j, b}, true
						}
					}
				}
			}
		}
		var best []int
		bestGain := -1
		for range 30 {
			row := make([]int, len(sizes))
			for k := range row {
				row[k] = -1
			}
			row[first.i], row[first.j] = first.a, first.b
			for _, d := range rng.Perm(len(sizes)) {
				if row[d] >= 0 {
					continue
				}
				bv, bg := -1, -1
				for _, v := range rng.Perm(sizes[d]) {
					row[d] = v
					if !allowed(row) {
						continue
					}
					if g := gain(row); g > bg {
						bv, bg = v, g
					}
				}
				row[d] = bv
			}
			if g := gain(row); g > bestGain {
				best, bestGain = row, g
			}
		}
		for i := range best {
			for j := i + 1; j < len(best); j++ {
				delete(uncovered, pair{i, best[i], j, best[j]})
			}
		}
		rows = append(rows, best)
	}
	return rows
}
