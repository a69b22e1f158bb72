package carbon

// Electricity mixes: the impact of 1 kWh taken from each zone's grid, as
// EcoLogits ships them (ecologits/data/electricity_mixes.csv, from
// ADEME's Base Empreinte): GWP in kgCO2eq/kWh, PE (primary energy) in
// MJ/kWh, ADPe (abiotic depletion) in kgSbeq/kWh. Zones are ISO 3166-1
// alpha-3 codes; WOR is the world average.
var mixes = map[string]Mix{
	"ARG": {0.35895, 7.8888, 7.686e-08},
	"AUS": {0.55159, 12.2247, 7.908e-08},
	"AUT": {0.10262, 2.8363, 1.4112e-07},
	"BEL": {0.11758, 8.9876, 3.372e-08},
	"BGR": {0.26421, 12.118, 8.236e-08},
	"BRA": {0.10321, 1.7701, 1.0962e-07},
	"CAN": {0.17481, 4.1955, 9.932e-08},
	"CHE": {0.0366, 4.7362, 1.0047e-07},
	"CHL": {0.26552, 6.434, 1.0585e-07},
	"CHN": {0.55955, 10.6736, 8.516e-08},
	"CYP": {0.51224, 11.9763, 4.488e-08},
	"CZE": {0.41386, 11.103, 8.176e-08},
	"DEU": {0.34414, 8.7477, 8.787e-08},
	"DNK": {0.1433, 6.6454, 1.574e-08},
	"ESP": {0.14615, 7.4839, 5.183e-08},
	"EST": {0.34102, 14.2926, 9.902e-08},
	"FIN": {0.07225, 6.2915, 8.051e-08},
	"FRA": {0.04418, 9.3135, 4.858e-08},
	"GBR": {0.21089, 9.0976, 3.71e-08},
	"GRC": {0.31976, 10.5179, 6.916e-08},
	"HUN": {0.18282, 10.5942, 6.446e-08},
	"IDN": {0.68243, 9.7582, 6.105e-08},
	"IND": {0.70832, 16.6775, 1.001e-07},
	"IRL": {0.2797, 8.0614, 2.193e-08},
	"ISL": {0.02833, 0.0128, 7.819e-08},
	"ITA": {0.28753, 7.9351, 5.439e-08},
	"JPN": {0.48232, 9.1105, 5.966e-08},
	"KOR": {0.41427, 9.9136, 5.18e-08},
	"LTU": {0.13934, 10.6476, 2.946e-08},
	"LUX": {0.13462, 8.0213, 1.0569e-07},
	"LVA": {0.13622, 3.7781, 1.5376e-07},
	"MEX": {0.48483, 9.9732, 5.784e-08},
	"MLT": {0.48416, 16.3514, 4.948e-08},
	"MYS": {0.60443, 10.5875, 4.494e-08},
	"NLD": {0.25331, 7.4815, 3.293e-08},
	"NOR": {0.03075, 0.1386, 1.2749e-07},
	"NZL": {0.12011, 3.9817, 7.205e-08},
	"POL": {0.61498, 11.1352, 1.0195e-07},
	"PRT": {0.11229, 6.5813, 3.419e-08},
	"ROU": {0.24555, 9.1329, 9.818e-08},
	"RUS": {0.4492, 10.9691, 9.603e-08},
	"SVK": {0.09649, 8.8184, 6.061e-08},
	"SVN": {0.22765, 8.4293, 9.923e-08},
	"SWE": {0.03582, 4.7301, 7.771e-08},
	"THA": {0.5545, 9.0495, 5.696e-08},
	"TUR": {0.4697, 8.7855, 7.498e-08},
	"TWN": {0.63565, 10.9587, 5.781e-08},
	"UKR": {0.25621, 12.2117, 6.479e-08},
	"USA": {0.38355, 9.6884, 9.855e-08},
	"WOR": {0.47301, 2.5871, 1.349e-08},
}

// euMembers are the EU-27 countries the table has (all but Croatia).
var euMembers = []string{"AUT", "BEL", "BGR", "CYP", "CZE", "DEU", "DNK", "ESP", "EST", "FIN", "FRA", "GRC", "HUN",
	"IRL", "ITA", "LTU", "LUX", "LVA", "MLT", "NLD", "POL", "PRT", "ROU", "SVK", "SVN", "SWE"}

// EUR is not in EcoLogits' table: it is the plain (unweighted) mean of
// the EU members above, a rough figure for providers hosted "somewhere in
// the EU". A country code is always better.
func init() {
	var eur Mix
	for _, z := range euMembers {
		m := mixes[z]
		eur.GWP += m.GWP
		eur.PE += m.PE
		eur.ADPe += m.ADPe
	}
	n := float64(len(euMembers))
	mixes["EUR"] = Mix{eur.GWP / n, eur.PE / n, eur.ADPe / n}
}
