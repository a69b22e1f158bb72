package carbon

import (
	"math"
	"testing"
	"time"
)

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Abs(want) }

// The expected figures are the method's formulas worked through by hand
// (see the package comment) for each case.
func TestEstimateKnownCases(t *testing.T) {
	for _, c := range []struct {
		name    string
		model   Model
		tokens  int64
		latency time.Duration
		kWh     float64
		kgCO2eq float64
	}{
		// 8B on one GPU, in France: 100 tokens take 2.8716 s.
		{"8B FRA", Model{TotalParams: 8, ActiveParams: 8, Zone: "FRA"}, 100, 10 * time.Second, 0.000376786, 2.607999756523592e-05},
		// The same, measured in 1 s: the generation time is capped.
		{"8B FRA capped", Model{TotalParams: 8, Zone: "fra"}, 100, time.Second, 0.00029880266666666667, 1.6486236262851342e-05},
		// 405B needs 243 GB at 4 bits: 4 GPUs; in Germany.
		{"405B DEU", Model{TotalParams: 405, Zone: "DEU"}, 10, time.Minute, 0.0023792606666666665, 0.0008644108865775546},
		// A measured 1 Wh per token, in France: 100 tokens, 100 Wh.
		{"measured", Model{KWhPerToken: 0.001, Zone: "FRA"}, 100, time.Second, 0.1, 0.1 * 0.04418},
	} {
		got, ok, err := Estimate(c.model, c.tokens, c.latency)
		if err != nil || !ok {
			t.Fatalf("%s: ok %v, err %v", c.name, ok, err)
		}
		if !near(got.KWh, c.kWh) || !near(got.KgCO2eq, c.kgCO2eq) {
			t.Errorf("%s: %+v, want %v kWh and %v kgCO2eq", c.name, got, c.kWh, c.kgCO2eq)
		}
	}
}

func TestEstimateWithoutParametersIsNull(t *testing.T) {
	if _, ok, err := Estimate(Model{Zone: "FRA"}, 100, time.Second); ok || err != nil {
		t.Fatalf("a model without parameters: ok %v err %v; want no estimate (null), no error", ok, err)
	}
	if got, ok, _ := Estimate(Model{TotalParams: 8}, 0, time.Second); !ok || got != (Impact{}) {
		t.Fatalf("no token: %+v %v, want a zero impact", got, ok)
	}
	if _, _, err := Estimate(Model{TotalParams: 8, Zone: "XYZ"}, 1, time.Second); err == nil {
		t.Fatal("an unknown zone gave no error")
	}
}

func TestMixes(t *testing.T) {
	for _, z := range []string{"FRA", "DEU", "EUR", "USA", "WOR"} {
		if m, ok := MixOf(z); !ok || m.GWP <= 0 {
			t.Errorf("zone %s: %+v %v", z, m, ok)
		}
	}
	fra, _ := MixOf("FRA")
	pol, _ := MixOf("POL")
	eur, _ := MixOf("EUR")
	if !(fra.GWP < eur.GWP && eur.GWP < pol.GWP) {
		t.Errorf("EUR %v is not between France %v and Poland %v", eur.GWP, fra.GWP, pol.GWP)
	}
	// More emissions where the grid is dirtier, the same energy.
	a, _, _ := Estimate(Model{TotalParams: 8, Zone: "FRA"}, 100, time.Minute)
	b, _, _ := Estimate(Model{TotalParams: 8, Zone: "POL"}, 100, time.Minute)
	if a.KWh != b.KWh || a.KgCO2eq >= b.KgCO2eq {
		t.Errorf("FRA %+v, POL %+v", a, b)
	}
}
