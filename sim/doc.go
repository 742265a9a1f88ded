// Package sim is the deterministic mesh simulator.
package sim
