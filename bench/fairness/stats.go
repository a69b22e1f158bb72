package main

import (
	"math"
	"net/http"
	"slices"
	"sort"
)

// ttftsMs are the times to first token, in ms, of the answered requests;
// an answered request that never got a token counts as +Inf.
func ttftsMs(rs []result) []float64 {
	var out []float64
	for _, x := range rs {
		if x.status != http.StatusOK {
			continue
		}
		if d := x.ttft(); d >= 0 {
			out = append(out, float64(d.Microseconds())/1000)
		} else {
			out = append(out, math.Inf(1))
		}
	}
	return out
}

// percentile is the p-th percentile (nearest rank); NaN without values.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

// jain is Jain's fairness index of x: (Σx)² / (n Σx²), 1 when all equal.
func jain(x []float64) float64 {
	var s, s2 float64
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if s2 == 0 {
		return math.NaN()
	}
	return s * s / (float64(len(x)) * s2)
}

func countRejected(rs []result) (rejected, failed int) {
	for _, x := range rs {
		switch {
		case x.rejected():
			rejected++
		case x.status != http.StatusOK:
			failed++
		}
	}
	return
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
