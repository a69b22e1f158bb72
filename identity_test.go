package guichet

import (
	"reflect"
	"testing"
)

func TestModelLimitsMergeTypeByType(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	r := &Role{Limits: []Limit{
		{Model: AllModels, Type: RequestsPerMinute, Value: n(60)},
		{Model: AllModels, Type: TokensPerMinute, Value: n(1000)},
		{Model: "big", Type: TokensPerMinute, Value: n(10)},
		{Model: "off", Type: RequestsPerMinute, Value: n(0)},
	}}
	got, ok := r.ModelLimits("big")
	want := []Limit{{Model: "big", Type: TokensPerMinute, Value: n(10)}, {Model: AllModels, Type: RequestsPerMinute, Value: n(60)}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("big: %+v, want its own tpm and the * rpm", got)
	}
	if got, ok := r.ModelLimits("other"); !ok || len(got) != 2 {
		t.Errorf("other: %+v, want the two * limits", got)
	}
	if got, _ := r.ModelLimits("off"); *got[0].Value != 0 {
		t.Errorf("off: %+v, want its rpm 0 first", got)
	}
	if _, ok := (&Role{Limits: []Limit{{Model: "a", Type: RequestsPerMinute}}}).ModelLimits("b"); ok {
		t.Error("a model with no entry and no * is visible")
	}
}
